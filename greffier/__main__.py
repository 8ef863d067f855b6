from greffier.cli import main

raise SystemExit(main())
