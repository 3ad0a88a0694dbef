from services.chain.service import main

main()
