# Remove the host-only network if this stack created it; tolerate it being gone already.
# Input: PULUMI_COMMAND_STDOUT, the create step's "MODE NAME created|existing".
read -r mode name origin <<<"${PULUMI_COMMAND_STDOUT:-}"
if [ "${origin:-}" != created ]; then
  echo "host-only network ${name:-?} was not created by meshlab; leaving it"
  exit 0
fi
if [ "$mode" = hostonlynet ]; then
  if VBoxManage list hostonlynets | grep -q "^Name: *${name}\$"; then
    VBoxManage hostonlynet remove --name="$name"
  fi
elif VBoxManage list hostonlyifs | grep -q "^Name: *${name}\$"; then
  VBoxManage hostonlyif remove "$name"
fi
echo "host-only network $name removed"
