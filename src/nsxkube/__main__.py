from nsxkube.cli import main

main()
