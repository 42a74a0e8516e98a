package imgfmt

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/opsdev/ops/arch"
)

// NextSteps are the commands that take an image written for t into the
// target, for a person or a CI step to run with their own credentials.
// Placeholders are shell variables ($BUCKET, …) so the lines paste as
// they are once those are set. uefi adds what marks an image as UEFI.
//
// An arm64 image is registered as such (GCP's, AWS's and Azure's arm64
// machines boot it only so marked), and these clouds boot arm64 machines
// through UEFI only: a step says so first when the image was built
// without --uefi.
func NextSteps(t Target, name, path string, uefi bool, a arch.Arch) []string {
	file := filepath.Base(path)
	img := cloudName(name)
	arm := a == arch.ARM64
	var steps []string
	switch t.Name {
	case "gcp":
		create := fmt.Sprintf("gcloud compute images create %s --source-uri gs://$BUCKET/%s", img, file)
		if uefi {
			create += " --guest-os-features=UEFI_COMPATIBLE"
		}
		if arm {
			create += " --architecture=ARM64"
		}
		steps = []string{"gcloud storage cp " + path + " gs://$BUCKET/" + file, create}
	case "aws":
		register := "# then: aws ec2 register-image --name " + img + " with the snapshot's id"
		if uefi {
			register += " and --boot-mode uefi"
		}
		if arm {
			register += " and --architecture arm64"
		}
		steps = []string{
			"aws s3 cp " + path + " s3://$BUCKET/" + file,
			fmt.Sprintf("aws ec2 import-snapshot --description %s --disk-container 'Format=VMDK,UserBucket={S3Bucket=$BUCKET,S3Key=%s}'", img, file),
			register,
		}
	case "azure":
		gen := "V1"
		if uefi {
			gen = "V2"
		}
		create := fmt.Sprintf("az image create --resource-group $GROUP --name %s --os-type Linux --hyper-v-generation %s --source https://$ACCOUNT.blob.core.windows.net/$CONTAINER/%s", img, gen, file)
		if arm {
			create += " --architecture Arm64"
		}
		steps = []string{
			"az storage blob upload --type page --account-name $ACCOUNT --container-name $CONTAINER --file " + path + " --name " + file,
			create,
		}
	}
	if steps != nil {
		if arm && !uefi {
			steps = append([]string{"# arm64 machines on " + t.Name + " boot through UEFI only: build this image with --uefi"}, steps...)
		}
		return steps
	}
	switch t.Name {
	case "hyper-v":
		gen := "1"
		if uefi {
			gen = "2"
		}
		return []string{fmt.Sprintf("New-VM -Name %s -Generation %s -MemoryStartupBytes 512MB -VHDPath %s", img, gen, path)}
	case "openstack":
		create := fmt.Sprintf("openstack image create --disk-format qcow2 --container-format bare --file %s", path)
		if uefi {
			create += " --property hw_firmware_type=uefi"
		}
		return []string{create + " " + img}
	case "proxmox":
		steps := []string{"qm importdisk $VMID " + path + " $STORAGE"}
		if uefi {
			steps = append(steps, "qm set $VMID --bios ovmf")
		}
		return steps
	case "vsphere":
		return []string{"govc import.vmdk " + path + " $DATASTORE_FOLDER"}
	}
	return nil
}

// cloudName makes name fit the strictest image naming of the clouds
// (GCP's: lower case letters, digits and dashes, starting with a letter).
func cloudName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "ops-" + s
	}
	return strings.TrimSuffix(s, "-")
}
