"""Infrastructure: errors, processes and the reaper, tools, output ownership, staging, signals. Imports nothing else of flow."""
