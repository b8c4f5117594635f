package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The queue workload: producers enqueue unique payloads; consumers claim and acknowledge
// them. Exactly once: no payload is acknowledged twice, none acknowledged that was never
// enqueued, and (after the faults end and the queue is drained) every payload whose enqueue
// was acknowledged has been acknowledged.
const queueName = "work"

type queueLog struct {
	mu       sync.Mutex
	enqueued map[string]bool // payload → whether its enqueue was acknowledged
	acked    map[string]int  // payload → acknowledgements that succeeded
	// payloads whose acknowledgement failed: it may have been applied (then the item is
	// done and never delivered again).
	ackUnknown map[string]bool
}

func newQueueLog() *queueLog {
	return &queueLog{enqueued: map[string]bool{}, acked: map[string]int{}, ackUnknown: map[string]bool{}}
}

func runProducer(ctx context.Context, endpoints []string, producer int, log *queueLog, counts *counters) {
	c, err := connect(endpoints)
	if err != nil {
		counts.note("producer: " + err.Error())
		return
	}
	defer c.Close()
	for i := 0; ctx.Err() == nil; i++ {
		payload := fmt.Sprintf("p%d-%d", producer, i)
		callCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_, err := c.Enqueue(callCtx, queueName, []byte(payload))
		cancel()
		log.mu.Lock()
		log.enqueued[payload] = err == nil
		log.mu.Unlock()
		if err != nil {
			counts.failed()
		} else {
			counts.ok()
		}
		time.Sleep(20 * time.Millisecond) // producers slower than consumers: the queue drains
	}
}

// runConsumer claims and acknowledges until ctx ends (or, when draining, until the queue
// has stayed empty for a while).
func runConsumer(ctx context.Context, endpoints []string, ttl time.Duration, log *queueLog, counts *counters, drain bool) {
	c, err := connect(endpoints)
	if err != nil {
		counts.note("consumer: " + err.Error())
		return
	}
	defer c.Close()
	sessions := &sessionKeeper{c: c, ttl: ttl}
	defer sessions.close()
	empty := 0
	for ctx.Err() == nil {
		session := sessions.get(ctx, counts)
		if session == nil {
			continue
		}
		claimCtx, cancel := context.WithTimeout(ctx, time.Second)
		claim, err := session.Claim(claimCtx, queueName)
		cancel()
		if err != nil {
			sessions.forgetIfLost()
			if drain {
				if empty++; empty >= 5 {
					return
				}
			}
			continue
		}
		empty = 0
		payload := string(claim.Payload)
		if err := claim.Ack(); err != nil {
			counts.failed()
			log.mu.Lock()
			log.ackUnknown[payload] = true
			log.mu.Unlock()
			continue
		}
		counts.ok()
		log.mu.Lock()
		log.acked[payload]++
		log.mu.Unlock()
	}
}

func checkQueue(log *queueLog) []string {
	var problems []string
	for payload, n := range log.acked {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("queue: %s acknowledged %d times", payload, n))
		}
		if _, ok := log.enqueued[payload]; !ok {
			problems = append(problems, fmt.Sprintf("queue: %s acknowledged but never enqueued", payload))
		}
	}
	for payload, acked := range log.enqueued {
		if acked && log.acked[payload] == 0 && !log.ackUnknown[payload] {
			problems = append(problems, fmt.Sprintf("queue: %s was enqueued but never delivered", payload))
		}
	}
	return problems
}
