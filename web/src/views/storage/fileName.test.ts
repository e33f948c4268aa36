import { expect, it } from 'vitest';
import { fileNameOf } from './StorageView';

it.each([
  ['https://deb.example/debian-12.iso', 'debian-12.iso'],
  ['https://x.example/a/b/my%20disk.img?x=1', 'my_disk.img'],
  ['https://x.example/', ''],
  ['not a url', ''],
])('%s', (u, want) => expect(fileNameOf(u)).toBe(want));
