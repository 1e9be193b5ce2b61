# Create, configure and start one VM. Safe to re-run: every step checks state first, and a
# running VM is left as it is. Inputs: MESHLAB_VM_NAME, MESHLAB_VM_GROUP, MESHLAB_OS_TYPE,
# MESHLAB_PLATFORM (x86|arm), MESHLAB_FIRMWARE, MESHLAB_STORAGE_BUS (sata|virtio), MESHLAB_CPUS,
# MESHLAB_MEMORY_MIB, MESHLAB_DISK_GIB, MESHLAB_MAC_NAT, MESHLAB_MAC_HOST_ONLY, MESHLAB_HOST_IP,
# MESHLAB_NETMASK, MESHLAB_BASE_DISK. Prints the VM's UUID.
require_env MESHLAB_VM_NAME MESHLAB_VM_GROUP MESHLAB_OS_TYPE MESHLAB_PLATFORM MESHLAB_FIRMWARE \
  MESHLAB_STORAGE_BUS MESHLAB_CPUS MESHLAB_MEMORY_MIB MESHLAB_DISK_GIB MESHLAB_MAC_NAT \
  MESHLAB_MAC_HOST_ONLY MESHLAB_HOST_IP MESHLAB_NETMASK MESHLAB_BASE_DISK

vm=$MESHLAB_VM_NAME
cache=$(cache_dir)
seed="$cache/seeds/$vm.iso"
base="$cache/images/$MESHLAB_BASE_DISK"
controller=meshlab-disks
[ -f "$seed" ] || die "seed ISO $seed is missing: the seed step must run first"
[ -f "$base" ] || die "base disk $base is missing: the image step must run first"

read -r net_mode net_name <<<"$(find_host_only_network "$MESHLAB_HOST_IP" "$MESHLAB_NETMASK")"
[ -n "${net_name:-}" ] || die "no VirtualBox host-only network carries $MESHLAB_HOST_IP/$MESHLAB_NETMASK"

if ! vm_exists "$vm"; then
  machine_folder=$(VBoxManage list systemproperties | sed -n 's/^Default machine folder: *//p')
  settings_file="$machine_folder$MESHLAB_VM_GROUP/$vm/$vm.vbox"
  if [ -f "$settings_file" ]; then
    # Left behind by an interrupted run: adopt it instead of failing on the existing folder.
    VBoxManage registervm "$settings_file"
  else
    # --platform-architecture exists from VirtualBox 7.1, which arm guests need anyway.
    platform_args=()
    [ "$MESHLAB_PLATFORM" = x86 ] || platform_args=(--platform-architecture="$MESHLAB_PLATFORM")
    VBoxManage createvm --name="$vm" --groups="$MESHLAB_VM_GROUP" --ostype="$MESHLAB_OS_TYPE" \
      ${platform_args[@]+"${platform_args[@]}"} --register >/dev/null
  fi
fi

if [ "$(vm_info "$vm" VMState)" != running ]; then
  if [ "$net_mode" = hostonlynet ]; then
    host_only_args=(--nic2=hostonlynet --host-only-net2="$net_name")
  else
    host_only_args=(--nic2=hostonly --host-only-adapter2="$net_name")
  fi
  VBoxManage modifyvm "$vm" --cpus="$MESHLAB_CPUS" --memory="$MESHLAB_MEMORY_MIB" \
    --firmware="$MESHLAB_FIRMWARE" --audio-enabled=off --boot1=disk --boot2=dvd --boot3=none \
    --nic1=nat --nic-type1=virtio --mac-address1="$MESHLAB_MAC_NAT" \
    "${host_only_args[@]}" --nic-type2=virtio --mac-address2="$MESHLAB_MAC_HOST_ONLY" --cable-connected2=on

  if [ -z "$(vm_info "$vm" storagecontrollername0)" ]; then
    if [ "$MESHLAB_STORAGE_BUS" = virtio ]; then
      VBoxManage storagectl "$vm" --name="$controller" --add=virtio --controller=VirtIO --portcount=2
    else
      VBoxManage storagectl "$vm" --name="$controller" --add=sata --controller=IntelAhci --portcount=2
    fi
  fi

  disk="$(dirname "$(vm_info "$vm" CfgFile)")/$vm.vdi"
  if [ ! -f "$disk" ]; then
    cp "$base" "$disk.partial"
    # Each copy needs its own UUID or VirtualBox refuses to register a second one.
    VBoxManage internalcommands sethduuid "$disk.partial" >/dev/null
    mv "$disk.partial" "$disk"
  fi
  VBoxManage storageattach "$vm" --storagectl="$controller" --port=0 --device=0 --type=hdd --medium="$disk"
  VBoxManage modifymedium disk "$disk" --resize=$((MESHLAB_DISK_GIB * 1024))
  VBoxManage storageattach "$vm" --storagectl="$controller" --port=1 --device=0 --type=dvddrive --medium="$seed"
  VBoxManage startvm "$vm" --type=headless >/dev/null
fi
vm_info "$vm" UUID
