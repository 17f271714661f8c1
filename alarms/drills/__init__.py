"""The go-live drills behind the operators' commands: test alarms raised through the code the
real sources use (`firing`: firetestalarm, escalationtest) and a bounded storm (`storm_drill`:
stormtest), marked as tests and closed again afterwards."""
