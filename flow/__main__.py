from flow.commands.cli import main

raise SystemExit(main())
