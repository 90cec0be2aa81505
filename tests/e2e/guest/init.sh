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
	dmesg | tail -n 60
	echo "E2E-DMESG-END"
	echo "E2E-POWEROFF"
	sync
	poweroff -f
	sleep 30
}

echo "E2E-BOOT $(uname -r)"

for m in $(cat /modules.list); do
	insmod "/modules/$m" || echo "E2E: FAIL guest-modules: insmod $m failed"
done

BDF=$(/e2e-guest find)
if [ -z "$BDF" ]; then
	echo "E2E: FAIL enum-id: no 1b36:10f0 device in /sys/bus/pci/devices"
	lspci 2>/dev/null
	finish
fi
D=/sys/bus/pci/devices/$BDF
echo "E2E: info device $BDF, iommu_group $(basename "$(readlink $D/iommu_group)" 2>/dev/null)"
/e2e-guest enum "$BDF"
/e2e-guest hold enum

echo vfio-pci > $D/driver_override
echo "$BDF" > /sys/bus/pci/drivers_probe
drv=$(basename "$(readlink $D/driver)" 2>/dev/null)
if [ "$drv" = vfio-pci ]; then
	echo "E2E: PASS guest-bind-vfio-pci"
else
	echo "E2E: FAIL guest-bind-vfio-pci: bound to '${drv:-nothing}'"
	finish
fi
# keep the device awake until the runtime-PM check
echo on > $D/power/control

/e2e-guest dma "$BDF" msix
/e2e-guest dma "$BDF" intx
/e2e-guest pm "$BDF"
/e2e-guest flr "$BDF"
/e2e-guest rpm "$BDF"
/e2e-guest dirty "$BDF"
finish
