from services.ner.service import main

main()
