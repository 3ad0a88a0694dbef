from services.checkpoint.service import main

main()
