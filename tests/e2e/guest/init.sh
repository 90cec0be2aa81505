#!/bin/sh
# /init of the vfpm end-to-end test guest (tests/e2e/run.sh builds the initramfs).
# Finds the vfpm demo device, binds it to the guest's vfio-pci and runs
# /e2e-guest for each check; every result is a line "E2E: PASS|FAIL ..." on the
# serial console, read by run.sh. Ends with a poweroff in every case.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin

# the console is read by e2e-guest for the host's acks: no echo, no translation
stty -echo -icrnl 2>/dev/null

finish() {
	echo "E2E-DMESG-BEGIN"
	dmesg | sed -n '/Run \/init as init process/,$p'
	echo "E2E-DMESG-END"
	echo "E2E-POWEROFF"
	sync
	poweroff -f
	sleep 30
}

# e2e-guest, with a crash reported as a failure of its own
guest() {
	/e2e-guest "$@"
	rc=$?
	if [ $rc -ge 128 ]; then
		echo "E2E: FAIL guest-program: 'e2e-guest $*' killed by signal $((rc - 128)) (guest dmesg at the end of serial.log)"
	fi
}

echo "E2E-BOOT $(uname -r)"

while read -r m; do
	insmod "/modules/$m" || echo "E2E: FAIL guest-modules: insmod $m failed"
done </modules.list

BDF=$(/e2e-guest find)
if [ -z "$BDF" ]; then
	echo "E2E: FAIL enum-id: no 1b36:10f0 device in /sys/bus/pci/devices"
	lspci 2>/dev/null
	finish
fi
D=/sys/bus/pci/devices/$BDF
echo "E2E: info device $BDF, iommu_group $(basename "$(readlink "$D"/iommu_group)" 2>/dev/null)"
guest enum "$BDF"
# DMA remapping must be on for the device (not identity-mapped): the guest's
# IOVAs are then what QEMU's vIOMMU translates and vfpmd receives in DMA_MAP
grp=$(basename "$(readlink "$D"/iommu_group)" 2>/dev/null)
gtype=$(cat "/sys/kernel/iommu_groups/$grp/type" 2>/dev/null)
case $gtype in
DMA*) echo "E2E: PASS guest-iommu-dma" ;;
*) echo "E2E: FAIL guest-iommu-dma: iommu group '${grp:-none}' has default domain type '${gtype:-none}', expected DMA or DMA-FQ" ;;
esac
guest hold enum

echo vfio-pci > "$D"/driver_override
echo "$BDF" > /sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "$D"/driver)" 2>/dev/null)
if [ "$drv" = vfio-pci ]; then
	echo "E2E: PASS guest-bind-vfio-pci"
else
	echo "E2E: FAIL guest-bind-vfio-pci: bound to '${drv:-nothing}'"
	finish
fi
# keep the device awake until the runtime-PM check
echo on > "$D"/power/control

guest dma "$BDF" msix
guest dma "$BDF" intx
guest pm "$BDF"
guest flr "$BDF"
guest rpm "$BDF"
guest dirty "$BDF"
finish
