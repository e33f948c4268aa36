// Views by resource kind: the main area shows the view registered for the
// selected tree node's kind. New resource kinds (containers, networks,
// firewall) add one entry here and one folder under views/.
import type { ComponentType } from 'react';
import { Text } from '@mantine/core';
import type { Route } from '../lib/route';
import { ContainerView } from './container/ContainerView';
import { DatacenterView } from './datacenter/DatacenterView';
import { NodeView } from './node/NodeView';
import { StorageView } from './storage/StorageView';
import { VMView } from './vm/VMView';

export interface ViewProps {
  route: Route;
}

function NotYet({ route }: ViewProps) {
  return <Text c="dimmed">No view for {route.kind} {route.id} in this version of the UI.</Text>;
}

export const views: Record<Route['kind'], ComponentType<ViewProps>> = {
  datacenter: DatacenterView,
  node: NodeView,
  qemu: VMView,
  lxc: ContainerView,
  storage: StorageView,
  unknown: NotYet,
};
