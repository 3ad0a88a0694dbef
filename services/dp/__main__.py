from services.dp.service import main

main()
