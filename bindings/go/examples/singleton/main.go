// Command singleton runs a job in one process at a time: every copy campaigns in an
// election; the leader works while it leads; when it dies, a standby takes over within the
// session's TTL, with a larger fencing token.
//
// usage: singleton ENDPOINTS NAME
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: singleton ENDPOINTS NAME")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	client, err := accord.Connect(ctx, strings.Split(os.Args[1], ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	session, err := client.NewSession(ctx, accord.WithTTL(3*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer session.Close()
	leadership, err := session.Campaign(ctx, "singleton", []byte(os.Args[2]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s: leading with token %d\n", os.Args[2], leadership.Token)
	for leadership.IsLeader() && ctx.Err() == nil {
		// The work, tagged with the token so a deposed leader's writes are refused.
		time.Sleep(500 * time.Millisecond)
	}
	leadership.Resign()
	fmt.Printf("%s: stepped down\n", os.Args[2])
}
