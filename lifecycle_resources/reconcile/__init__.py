"""Reading the catalog, the declared models, intervals, planners and executors."""
