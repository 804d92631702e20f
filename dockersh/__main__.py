from dockersh.cli import main

raise SystemExit(main())
