// Command dispatcher consumes TripCreated events from the broker and
// assigns a driver to each; GET /dispatched lists what it dispatched.
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
	go func() {
		for {
			q, err := redisq.Dial("redis:6379", time.Minute)
			if err != nil {
				fmt.Println("broker:", err)
				continue
			}
			last := "0"
			for {
				entries, err := q.Read("trips", last, 5*time.Second)
				if err != nil {
					fmt.Println("read:", err)
					break
				}
				for _, e := range entries {
					last = e.ID
					if e.Fields["event"] != "TripCreated" {
						continue
					}
					d := map[string]string{"trip": e.Fields["trip"], "passenger": e.Fields["passenger"], "driver": "driver-1"}
					fmt.Printf("dispatching driver-1 to %s (%s)\n", d["trip"], d["passenger"])
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
	fmt.Println("dispatcher listening on :8080")
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
