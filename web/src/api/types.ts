// Aliases for the generated OpenAPI types (schema.d.ts, from `make web-api`).
// Views import these names, never the raw generated paths.
import type { components } from './schema';

type S = components['schemas'];
export type Resource = S['Resource'];
export type VM = S['VM'];
export type VMConfig = S['VMConfig'];
export type VMCreate = S['VMCreate'];
export type VMUpdate = S['VMUpdate'];
export type VMDisk = S['VMDisk'];
export type VMNet = S['VMNet'];
export type VMStatus = S['VMStatus'];
export type VMSnapshot = S['VMSnapshot'];
export type Task = S['Task'];
export type TaskLogLine = S['TaskLogLine'];
export type TaskRef = S['TaskRef'];
export type Ticket = S['Ticket'];
export type Realm = S['Realm'];
export type Problem = S['Problem'];
export type FieldError = S['FieldError'];
export type NodeInfo = S['Node'];
export type NodeStatus = S['NodeStatus'];
export type Storage = S['Storage'];
export type StorageStatus = S['StorageStatus'];
export type Volume = S['Volume'];
export type User = S['User'];
export type Group = S['Group'];
export type Role = S['Role'];
export type ACLEntry = S['ACLEntry'];
export type Token = S['Token'];
export type TokenSecret = S['TokenSecret'];
export type VersionInfo = S['VersionInfo'];
export type Usage = S['Usage'];
/** Privileges by ACL path, as GET /access/permissions returns them. */
export type Permissions = Record<string, string[] | null>;
