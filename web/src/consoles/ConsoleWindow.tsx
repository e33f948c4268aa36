// A VM's console alone in a browser window (/console/qemu/{id}).
import { useEffect } from 'react';
import { Alert, Box, Loader } from '@mantine/core';
import { errorText } from '../api/client';
import { useVM, useVMStatus } from '../api/queries';
import Console from './Console';

export default function ConsoleWindow({ vmid }: { vmid: number }) {
  const vm = useVM(vmid);
  const st = useVMStatus(vmid);
  const c = vm.data?.config;
  useEffect(() => {
    document.title = `VM ${vmid}${c?.name ? ` (${c.name})` : ''} — console`;
  }, [vmid, c?.name]);
  if (vm.isLoading) return <Loader m="md" />;
  if (vm.error || !c) return <Alert color="red" m="md">VM {vmid}: {errorText(vm.error)}</Alert>;
  const status = st.data?.status ?? vm.data!.status;
  return (
    <Box p="xs">
      <Console vmid={vmid} running={status === 'running' || status === 'paused'} serial={c.serial} vga={c.vga} popup />
    </Box>
  );
}
