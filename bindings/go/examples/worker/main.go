// Command worker processes a work queue with others: each item goes to one worker and is
// acknowledged once; the items of a worker that dies go to another.
//
// usage: worker ENDPOINTS QUEUE        (process until the queue stays empty for 2 s)
//
//	worker ENDPOINTS QUEUE -produce N
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
)

func main() {
	if len(os.Args) != 3 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: worker ENDPOINTS QUEUE [-produce N]")
		os.Exit(2)
	}
	ctx := context.Background()
	client, err := accord.Connect(ctx, strings.Split(os.Args[1], ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	queue := os.Args[2]
	if len(os.Args) == 5 {
		n, _ := strconv.Atoi(os.Args[4])
		for i := 0; i < n; i++ {
			if _, err := client.Enqueue(ctx, queue, []byte(fmt.Sprintf("job-%d", i))); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
	}
	session, err := client.NewSession(ctx, accord.WithTTL(5*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer session.Close()
	done := 0
	for {
		wait, cancel := context.WithTimeout(ctx, 2*time.Second)
		claim, err := session.Claim(wait, queue)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, accord.ErrTimeout) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("processing %s (item %d)\n", claim.Payload, claim.Item)
		if err := claim.Ack(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		done++
	}
	fmt.Printf("processed %d\n", done)
}
