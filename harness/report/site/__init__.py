"""`harness site`: a static results site across packages (collect: what is read, and from where; rows: the
figures; svg: the charts; pages: the HTML; build: the files)."""
