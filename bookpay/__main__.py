from bookpay.cli import main

main()
