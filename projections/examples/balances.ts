import { defineProjection } from '../../engine/projections/projection.js';

interface Payment {
  readonly account: string;
  readonly amount: number;
}

interface Balance {
  readonly balance: number;
  readonly payments: number;
}

/** Per account: its balance and how many payments made it; an account back at zero is removed. */
export default defineProjection({
  name: 'balances',
  description: 'balance and payment count per account',
  topics: ['payments'],
  async handle(event, ctx) {
    const { account, amount } = event.value as Payment;
    const before = (await ctx.get(account)) as Balance | undefined;
    const balance = (before?.balance ?? 0) + amount;
    if (balance === 0) ctx.del(account);
    else ctx.put(account, { balance, payments: (before?.payments ?? 0) + 1 });
  },
});
