"""MLPerf compatibility: mllog, compliance rules, power logs, scoring, packages."""
