"""The commands: the CLI, the run pipeline and its steps, verify, doctor, the run report and plots. The top layer under flow.sweep."""
