"""A job's results as a person reads them: a severity-by-status chart and a table of results.

The same pieces make the admin's job page and the standalone HTML report of the API.
"""
