"""`raas-local bench`: policies x budgets, measured side by side in one run."""
