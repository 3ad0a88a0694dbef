from services.linker.service import main

main()
