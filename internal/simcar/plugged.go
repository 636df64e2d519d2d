package simcar

// Plugged reports whether the cable is in. The simulated EVSE reads it to
// set its control pilot (A without a vehicle, B or C with one).
func (c *Car) Plugged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	return c.plugged
}
