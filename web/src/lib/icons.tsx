// Small inline icons (no icon font, no emoji font needed on the host).
import type { SVGProps } from 'react';

const paths: Record<string, string> = {
  datacenter: 'M3 3h7v7H3zM14 3h7v7h-7zM3 14h7v7H3zM14 14h7v7h-7z',
  node: 'M3 4h18v6H3zM3 14h18v6H3zM7 7h.01M7 17h.01',
  qemu: 'M3 4h18v12H3zM8 20h8M12 16v4',
  lxc: 'M12 2l9 5v10l-9 5-9-5V7zM12 22V12M21 7l-9 5-9-5',
  storage: 'M4 6c0-2 16-2 16 0v12c0 2-16 2-16 0zM4 6c0 2 16 2 16 0M4 12c0 2 16 2 16 0',
  group: 'M3 6h6l2 2h10v11H3z',
  template: 'M8 8h12v12H8zM4 16V4h12',
};

export function Icon({ name, size = 15, ...rest }: { name: keyof typeof paths | string; size?: number } & SVGProps<SVGSVGElement>) {
  return (
    <svg width={size} height={size} viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth={2} strokeLinecap="round" strokeLinejoin="round" aria-hidden {...rest}>
      <path d={paths[name] ?? paths.group} />
    </svg>
  );
}
