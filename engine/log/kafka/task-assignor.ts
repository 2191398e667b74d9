import kafkajs from 'kafkajs';
import type { Assigner, GroupMember, GroupMemberAssignment, PartitionAssigner } from 'kafkajs';
import type { TaskGroups } from '../log.js';

const { AssignerProtocol } = kafkajs;

/** The group protocol name: every member of a Millrace group must speak it. */
export const TASK_ASSIGNOR_NAME = 'millrace-task-sticky';
const PROTOCOL_VERSION = 1;
/** Upper bound on the tasks a member reports in its join metadata (a group's tasks number in the thousands at most). */
const MAX_CLAIMED_TASKS = 100_000;

/** A member of the group and the tasks it owned before this rebalance, oldest first. */
export interface MemberClaim {
  readonly memberId: string;
  readonly owned: readonly string[];
}

/**
 * Assigns whole tasks to members: deterministic (the same input gives the same answer on any leader), balanced (every
 * member gets ⌊tasks/members⌋ or ⌈tasks/members⌉) and sticky (a member keeps the tasks it owned, up to its share;
 * when it must give some up, it gives up those it acquired last, so a member that returns after a short absence gets
 * back what was moved away from it).
 *
 * A task claimed by two members (a stale member) stays with the one whose id sorts first. Tasks no member keeps are
 * handed out in natural order, one at a time, to members below their share (in member-id order), which spreads tasks
 * of one sub-topology over the group.
 */
export function assignTasks(tasks: readonly string[], members: readonly MemberClaim[]): Map<string, string[]> {
  const result = new Map<string, string[]>();
  if (members.length === 0) return result;
  const sortedMembers = [...members].sort((a, b) => compareIds(a.memberId, b.memberId));
  const taskSet = new Set(tasks);
  const count = taskSet.size;
  const floor = Math.floor(count / sortedMembers.length);
  const extra = count % sortedMembers.length;
  const ceil = extra > 0 ? floor + 1 : floor;

  const claimed = new Set<string>();
  const kept = new Map<string, string[]>();
  for (const member of sortedMembers) {
    const keep: string[] = [];
    for (const task of member.owned) {
      if (keep.length >= ceil) break;
      if (!taskSet.has(task) || claimed.has(task)) continue;
      keep.push(task);
      claimed.add(task);
    }
    kept.set(member.memberId, keep);
  }

  // Exactly `extra` members may hold ⌈tasks/members⌉: those that keep the most already, then by member id.
  const byKept = [...sortedMembers].sort(
    (a, b) => kept.get(b.memberId)!.length - kept.get(a.memberId)!.length || compareIds(a.memberId, b.memberId),
  );
  const target = new Map<string, number>();
  byKept.forEach((member, i) => target.set(member.memberId, i < extra ? ceil : floor));
  for (const member of sortedMembers) {
    const keep = kept.get(member.memberId)!;
    const share = target.get(member.memberId)!;
    // Give up the most recently acquired tasks first.
    for (const task of keep.splice(share)) claimed.delete(task);
  }

  const unassigned = [...taskSet].filter((t) => !claimed.has(t)).sort(compareIds);
  let next = 0;
  while (next < unassigned.length) {
    let gave = false;
    for (const member of sortedMembers) {
      if (next >= unassigned.length) break;
      const keep = kept.get(member.memberId)!;
      if (keep.length >= target.get(member.memberId)!) continue;
      keep.push(unassigned[next++]!);
      gave = true;
    }
    if (!gave) throw new TypeError('task assignment ran out of capacity; the shares do not add up');
  }
  for (const member of sortedMembers) result.set(member.memberId, kept.get(member.memberId)!);
  return result;
}

/** Natural order: "0_2" before "0_10"; digits compare as numbers, everything else by code unit. */
export function compareIds(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) return compareNumeric(x, y) || (x < y ? -1 : 1);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length || (a < b ? -1 : a > b ? 1 : 0);
}

function compareNumeric(x: string, y: string): number {
  const a = x.replace(/^0+/, '');
  const b = y.replace(/^0+/, '');
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What a member says about itself when it joins: the tasks it owns, oldest first. */
export function encodeClaim(owned: readonly string[]): Buffer {
  return Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, owned }), 'utf8');
}

/** A member's claim from its join metadata; anything unreadable claims nothing (it is treated as a new member). */
export function decodeClaim(userData: Buffer | null | undefined): string[] {
  if (userData === null || userData === undefined || userData.length === 0) return [];
  try {
    const parsed = JSON.parse(userData.toString('utf8')) as { v?: unknown; owned?: unknown };
    if (parsed.v !== PROTOCOL_VERSION || !Array.isArray(parsed.owned)) return [];
    return parsed.owned.filter((t): t is string => typeof t === 'string').slice(0, MAX_CLAIMED_TASKS);
  } catch {
    // A member of another version or a corrupt claim: it gets tasks as a new member would.
    return [];
  }
}

export interface TaskAssignorOptions {
  readonly taskGroups: TaskGroups;
  /** The tasks this member owns now, oldest first: sent to the leader in the member's join metadata. */
  readonly owned: () => readonly string[];
  /** Told the group's assignment when this member is the leader (for logging and tests). */
  readonly onLeaderAssignment?: (assignment: ReadonlyMap<string, readonly string[]>) => void;
}

/** The assigner plugged into kafkajs (`partitionAssigners`): whole tasks move between members, stickily. */
export function taskAssignor(options: TaskAssignorOptions): PartitionAssigner {
  return () => {
    const assigner: Assigner = {
      name: TASK_ASSIGNOR_NAME,
      version: PROTOCOL_VERSION,
      protocol({ topics }) {
        return {
          name: TASK_ASSIGNOR_NAME,
          metadata: AssignerProtocol.MemberMetadata.encode({
            version: PROTOCOL_VERSION,
            topics,
            userData: encodeClaim(options.owned()),
          }),
        };
      },
      async assign({ members }: { members: GroupMember[] }): Promise<GroupMemberAssignment[]> {
        const claims = members.map((m) => ({
          memberId: m.memberId,
          owned: decodeClaim(AssignerProtocol.MemberMetadata.decode(m.memberMetadata)?.userData),
        }));
        const tasks = [...options.taskGroups.tasks.keys()];
        const assignment = assignTasks(tasks, claims);
        options.onLeaderAssignment?.(assignment);
        return members.map((m) => {
          const partitions: Record<string, number[]> = {};
          for (const task of assignment.get(m.memberId) ?? []) {
            for (const { topic, partition } of options.taskGroups.tasks.get(task) ?? []) {
              (partitions[topic] ??= []).push(partition);
            }
          }
          for (const list of Object.values(partitions)) list.sort((a, b) => a - b);
          return {
            memberId: m.memberId,
            memberAssignment: AssignerProtocol.MemberAssignment.encode({
              version: PROTOCOL_VERSION,
              assignment: partitions,
              userData: Buffer.alloc(0),
            }),
          };
        });
      },
    };
    return assigner;
  };
}

/** The tasks whose every partition is in `assignment` (topic → partitions), in natural order. */
export function tasksOf(taskGroups: TaskGroups, assignment: Readonly<Record<string, readonly number[]>>): string[] {
  const owned: string[] = [];
  for (const [task, partitions] of taskGroups.tasks) {
    if (partitions.length > 0 && partitions.every((p) => assignment[p.topic]?.includes(p.partition) === true)) owned.push(task);
  }
  return owned.sort(compareIds);
}
