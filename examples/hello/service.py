# The hello service: greets whoever the input names, with the greeting from data item 0.
import teex

name = teex.TEEX_getinput() or "world"
greeting = teex.TEEX_getdata(0).decode().strip() if teex.data_count() else "Hello"
teex.TEEX_return(f"{greeting}, {name}!")
