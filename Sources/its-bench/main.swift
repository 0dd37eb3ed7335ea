print("its-bench")
