"""Claims a vendor can sign: `harness claim CLAIM.toml` (claim_file: what is claimed; metrics: about what;
rules: what must hold first; assess: the statistics and the verdict; render: what people read)."""
