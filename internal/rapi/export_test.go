package rapi

// InFlight reports whether a command waits for its reply. Tests that move
// a manual clock use it to let replies arrive before time moves on.
func InFlight(d *Driver) bool { return len(d.sem) > 0 }
