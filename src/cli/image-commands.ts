import type { presentImage } from '../images/image-routes';
import { CliError, type ApiClient } from './client';
import { table } from './render';

type Out = (text: string) => void;

/** An image as the API shows it (a type only: nodectl loads nothing of the server). */
type Image = ReturnType<typeof presentImage>;

export const IMAGES_USAGE = `  nodectl images create NAME --kernel K --initrd I --disk D --sha256 HEX   register (paths on the server, or http(s) URLs)
  nodectl images list | show NAME | delete NAME`;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function showImage(image: Image, json: boolean, out: Out): void {
  if (json) {
    out(JSON.stringify(image, null, 2));
    return;
  }
  out(
    [
      ['name', image.name],
      ['kernel', image.kernel],
      ['initrd', image.initrd],
      ['disk', image.disk],
      ['size', `${formatBytes(image.size)} (${image.size} bytes)`],
      ['sha256', image.sha256],
      ['created', image.created_at],
    ]
      .map(([k, v]) => `${k!.padEnd(8)}${v}`)
      .join('\n'),
  );
}

export interface ImageFlags {
  json: boolean;
  kernel?: string;
  initrd?: string;
  disk?: string;
  sha256?: string;
}

/** `nodectl images VERB ...`; a usage mistake is exit status 2. */
export async function imagesCommand(api: ApiClient, verb: string | undefined, names: string[], flags: ImageFlags, out: Out): Promise<number> {
  const path = (name: string) => `/api/v1/images/${encodeURIComponent(name)}`;
  switch (verb) {
    case 'create': {
      const { kernel, initrd, disk, sha256 } = flags;
      if (names.length !== 1 || !kernel || !initrd || !disk || !sha256) {
        throw new CliError('usage: nodectl images create NAME --kernel K --initrd I --disk D --sha256 HEX', 2);
      }
      showImage(await api.request<Image>('POST', '/api/v1/images', { name: names[0], kernel, initrd, disk, sha256 }), flags.json, out);
      return 0;
    }
    case 'list': {
      if (names.length > 0) throw new CliError('usage: nodectl images list', 2);
      const images = await api.request<Image[]>('GET', '/api/v1/images');
      if (flags.json) out(JSON.stringify(images, null, 2));
      else out(table(['NAME', 'SIZE', 'SHA256', 'DISK', 'CREATED'], images.map((i) => [i.name, formatBytes(i.size), `${i.sha256.slice(0, 16)}...`, i.disk, i.created_at])));
      return 0;
    }
    case 'show':
      if (names.length !== 1) throw new CliError('usage: nodectl images show NAME', 2);
      showImage(await api.request<Image>('GET', path(names[0]!)), flags.json, out);
      return 0;
    case 'delete':
      if (names.length !== 1) throw new CliError('usage: nodectl images delete NAME', 2);
      await api.request('DELETE', path(names[0]!));
      out(`image ${names[0]} deleted`);
      return 0;
    default:
      throw new CliError(`unknown command: images ${verb ?? ''}\n\n${IMAGES_USAGE}`, 2);
  }
}
