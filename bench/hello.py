# Trivial service for the startup benchmark.
# Inside teepy the result is returned through teex; run natively (no teex
# module) it is printed instead, so one file serves both.
try:
    import teex
except ImportError:
    print("hello")
else:
    teex.TEEX_return("hello")
