// Command trip takes trip requests: POST /trips {"passenger":"7"} asks the
// passenger service (by name, over HTTP) who is riding, then publishes a
// TripCreated event to the broker's "trips" stream.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"taxi/redisq"
)

func main() {
	var next atomic.Int64
	http.HandleFunc("/trips", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a trip", http.StatusMethodNotAllowed)
			return
		}
		var req struct{ Passenger string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Passenger == "" {
			http.Error(w, "body: {\"passenger\": \"ID\"}", http.StatusBadRequest)
			return
		}
		resp, err := http.Get("http://passenger:8080/passengers/" + req.Passenger)
		if err != nil {
			http.Error(w, "passenger service: "+err.Error(), http.StatusBadGateway)
			return
		}
		var p map[string]string
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		id := fmt.Sprintf("trip-%d", next.Add(1))
		q, err := redisq.Dial("redis:6379", 10*time.Second)
		if err != nil {
			http.Error(w, "broker: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer q.Do("QUIT")
		if _, err := q.Do("XADD", "trips", "*", "event", "TripCreated", "trip", id, "passenger", p["name"]); err != nil {
			http.Error(w, "publish: "+err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Printf("created %s for %s\n", id, p["name"])
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"trip": id, "passenger": p["name"]})
	})
	// GET /lookup/{id} asks the passenger service, by name, and says how
	// long that took inside this guest (X-Passenger-Micros): make bench
	// compares it with the same request to passenger's host port.
	http.HandleFunc("/lookup/", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		resp, err := http.Get("http://passenger:8080/passengers/" + strings.TrimPrefix(r.URL.Path, "/lookup/"))
		if err != nil {
			http.Error(w, "passenger service: "+err.Error(), http.StatusBadGateway)
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, "passenger service: "+err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Passenger-Micros", strconv.FormatInt(time.Since(start).Microseconds(), 10))
		w.Write(b)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	fmt.Println("trip service listening on :8080")
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
