// Command dispatcher consumes TripCreated events from the broker and
// assigns a driver to each; GET /dispatched lists what it dispatched.
// Its replicas share the events: each is a consumer of one Redis
// consumer group, named by its host name.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"taxi/redisq"
)

func main() {
	var mu sync.Mutex
	dispatched := []map[string]string{}
	me, _ := os.Hostname()
	go func() {
		for {
			q, err := redisq.Dial("redis:6379", time.Minute)
			if err != nil {
				fmt.Println("broker:", err)
				continue
			}
			for {
				entries, err := q.ReadGroup("trips", "dispatchers", me, 5*time.Second)
				if err != nil {
					fmt.Println("read:", err)
					break
				}
				for _, e := range entries {
					if e.Fields["event"] != "TripCreated" {
						continue
					}
					d := map[string]string{"trip": e.Fields["trip"], "passenger": e.Fields["passenger"], "driver": "driver-1", "dispatcher": me}
					fmt.Printf("%s dispatching driver-1 to %s (%s)\n", me, d["trip"], d["passenger"])
					mu.Lock()
					dispatched = append(dispatched, d)
					mu.Unlock()
				}
			}
		}
	}()
	http.HandleFunc("/dispatched", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(dispatched)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok", me) })
	fmt.Println("dispatcher listening on :8080")
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
