// Command etcd is etcd's own server (go.etcd.io/etcd/server/v3, the version go.mod pins),
// built from the Go module proxy for `make bench-compare`, which runs it beside accord.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
