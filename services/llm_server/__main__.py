from services.llm_server.service import main

main()
