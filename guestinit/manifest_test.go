package guestinit

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestManifestJSON: the manifest ops writes is the one init reads back,
// under the keys below; what is left out of a manifest without volumes,
// late modules, DHCP or debugging is left out of its JSON.
func TestManifestJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Manifest
		json string
	}{
		{"static network", Manifest{
			Program: "/hello", Args: []string{"/hello", "-a"}, Env: []string{"PATH=/bin", "X=a=b"}, Cwd: "/",
			Modules: []string{"/.ops/modules/00-virtio_net.ko"},
			Net:     Net{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		}, `{"program":"/hello","args":["/hello","-a"],"env":["PATH=/bin","X=a=b"],"cwd":"/","modules":["/.ops/modules/00-virtio_net.ko"],` +
			`"net":{"address":"10.0.2.15/24","gateway":"10.0.2.2","dns":["10.0.2.3"]}}`},
		{"DHCP, volumes, late modules, debugging", Manifest{
			Program: "/redis-server", Args: []string{"redis-server"}, Cwd: "/data",
			LateModules: []string{"/.ops/modules/late-00-button.ko"},
			Net:         Net{DHCP: true},
			Mounts:      []Mount{{Label: "data", Path: "/data"}, {Label: "conf", Path: "/etc/redis", ReadOnly: true}},
			Debug:       true,
		}, `{"program":"/redis-server","args":["redis-server"],"env":null,"cwd":"/data","modules":null,"late_modules":["/.ops/modules/late-00-button.ko"],` +
			`"net":{"dhcp":true,"address":"","gateway":"","dns":null},` +
			`"mounts":[{"label":"data","path":"/data"},{"label":"conf","path":"/etc/redis","readonly":true}],"debug":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.json {
				t.Errorf("JSON\n%s\nwant\n%s", b, tc.json)
			}
			var back Manifest
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.m) {
				t.Errorf("read back as %+v\nwant %+v", back, tc.m)
			}
		})
	}
}
