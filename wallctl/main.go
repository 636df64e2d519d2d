// Command wallctl is satwatt's wall controller. It answers the car over the
// charge cable's powerline link, sells energy over Lightning, switches the
// charger only while energy is paid for, and records every session. This
// first version only says so: the controller arrives in a later issue.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "wallctl: the wall controller is not built yet; see the README")
	os.Exit(2)
}
