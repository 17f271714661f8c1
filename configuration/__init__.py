"""The whole configuration as one document: seed load and export (YAML or JSON), the checks
of a configuration as a whole, their commands (`loadseed`, `exportseed`, `validateconfig`) and
`POST /v1/admin/seed`."""
