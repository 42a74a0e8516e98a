package imgfmt

import (
	"strings"
	"testing"

	"github.com/opsdev/ops/arch"
)

func TestCloudName(t *testing.T) {
	for in, want := range map[string]string{
		"hello": "hello", "My_App": "my-app", "9lives": "ops-9lives", "a.b-": "a-b", "__": "ops",
	} {
		if got := cloudName(in); got != want {
			t.Errorf("cloudName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNextStepsARM64: an arm64 image is registered as arm64, and one
// built without UEFI is told it needs it first.
func TestNextStepsARM64(t *testing.T) {
	for _, tc := range []struct {
		target string
		uefi   bool
		want   []string
	}{
		{"gcp", true, []string{"gcloud storage cp", "--guest-os-features=UEFI_COMPATIBLE --architecture=ARM64"}},
		{"gcp", false, []string{"# arm64 machines on gcp boot through UEFI only: build this image with --uefi", "gcloud storage cp", "--architecture=ARM64"}},
		{"aws", true, []string{"aws s3 cp", "Format=VMDK", "--boot-mode uefi and --architecture arm64"}},
		{"azure", true, []string{"--type page", "--hyper-v-generation V2", "--architecture Arm64"}},
		{"openstack", false, []string{"openstack image create"}},
	} {
		tg, err := ParseTarget(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got := NextSteps(tg, "app", "/x/app.tar.gz", tc.uefi, arch.ARM64)
		joined := strings.Join(got, "\n")
		for _, w := range tc.want {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: steps %q lack %q", tc.target, got, w)
			}
		}
		if len(got) > 0 && strings.HasPrefix(got[0], "#") != (!tc.uefi && tc.target != "openstack") {
			t.Errorf("%s: first step %q", tc.target, got[0])
		}
	}
}

func TestNextSteps(t *testing.T) {
	for _, tc := range []struct {
		target string
		uefi   bool
		want   []string // substrings, one a step, in order
	}{
		{"gcp", false, []string{"gcloud storage cp /x/app.tar.gz gs://$BUCKET/app.tar.gz", "gcloud compute images create app --source-uri gs://$BUCKET/app.tar.gz"}},
		{"gcp", true, []string{"gcloud storage cp", "--guest-os-features=UEFI_COMPATIBLE"}},
		{"aws", true, []string{"aws s3 cp", "Format=VMDK", "--boot-mode uefi"}},
		{"azure", true, []string{"--type page", "--hyper-v-generation V2"}},
		{"hyper-v", false, []string{"-Generation 1"}},
		{"openstack", true, []string{"--disk-format qcow2 --container-format bare --file /x/app.tar.gz --property hw_firmware_type=uefi app"}},
		{"proxmox", true, []string{"qm importdisk", "qm set $VMID --bios ovmf"}},
		{"vsphere", false, []string{"govc import.vmdk"}},
		{"onprem", false, nil},
	} {
		tg, err := ParseTarget(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got := NextSteps(tg, "app", "/x/app.tar.gz", tc.uefi, arch.AMD64)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d steps %q, want %d", tc.target, len(got), got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s step %d = %q, want it to contain %q", tc.target, i, got[i], w)
			}
		}
		if tc.uefi == false && strings.Contains(strings.Join(got, " "), "uefi") {
			t.Errorf("%s: BIOS image steps mention UEFI: %q", tc.target, got)
		}
	}
}
