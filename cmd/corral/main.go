// Command corral is both the node daemon ("corral daemon") and the client
// CLI for the cluster's REST API.
package main

import "os"

func main() {
	os.Exit(ExecuteIO(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
