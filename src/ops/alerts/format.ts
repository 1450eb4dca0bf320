/**
 * The body of an alert delivery in the form the receiver accepts: metaspn's own JSON event, or a
 * chat message for Slack, Microsoft Teams or Discord incoming webhooks (which refuse a body without
 * their own fields: Slack's `text`, Discord's `content`, Teams' card).
 */

import { WEBHOOK_FORMATS, type WebhookFormat } from '../../config/alerts.js';

export { WEBHOOK_FORMATS, type WebhookFormat };

/** One alert event, as metaspn's JSON delivery carries it. */
export interface AlertEvent {
  event_id: string;
  type: 'metaspn.alert';
  created_at: string;
  workspace: string;
  host: string;
  alert: {
    fingerprint: string;
    rule: string;
    subject: string;
    severity: string;
    status: 'open';
    message: string;
    since: string;
    details: Record<string, unknown>;
  };
}

/** Discord refuses a message over 2000 characters. */
const DISCORD_MAX = 2000;

/** The alert in one line, for people: `[metaspn] WARNING dead_letters_grew: <message> (host, workspace)`. */
export function alertText(e: AlertEvent): string {
  return `[metaspn] ${e.alert.severity.toUpperCase()} ${e.alert.rule}: ${e.alert.message} (since ${e.alert.since}; host ${e.host}, workspace ${e.workspace})`;
}

/** Slack mrkdwn treats &, < and > as control characters. */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The JSON body of a delivery of `e` in `format`. */
export function alertBody(format: WebhookFormat, e: AlertEvent): string {
  const text = alertText(e);
  switch (format) {
    case 'json':
      return JSON.stringify({ ...e, text });
    case 'slack': {
      const icon = e.alert.severity === 'critical' ? ':rotating_light:' : ':warning:';
      return JSON.stringify({
        text: `${icon} *metaspn ${slackEscape(e.alert.severity)}* \`${slackEscape(e.alert.rule)}\`: ${slackEscape(e.alert.message)}\nsince ${slackEscape(e.alert.since)} · host ${slackEscape(e.host)} · workspace ${slackEscape(e.workspace)} · event ${e.event_id}`,
      });
    }
    case 'discord':
      // No mention in an alert pings anybody (a queue name or message could hold "@everyone").
      return JSON.stringify({ content: text.length > DISCORD_MAX ? `${text.slice(0, DISCORD_MAX - 1)}…` : text, allowed_mentions: { parse: [] } });
    case 'teams':
      // A Teams "Workflows" webhook takes a message with an Adaptive Card attachment.
      return JSON.stringify({
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            contentUrl: null,
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.4',
              body: [
                { type: 'TextBlock', size: 'Medium', weight: 'Bolder', wrap: true, color: e.alert.severity === 'critical' ? 'Attention' : 'Warning', text: `metaspn ${e.alert.severity}: ${e.alert.rule}` },
                { type: 'TextBlock', wrap: true, text: e.alert.message },
                {
                  type: 'FactSet',
                  facts: [
                    { title: 'Subject', value: e.alert.subject },
                    { title: 'Since', value: e.alert.since },
                    { title: 'Host', value: e.host },
                    { title: 'Workspace', value: e.workspace },
                    { title: 'Event', value: e.event_id },
                  ],
                },
              ],
            },
          },
        ],
      });
  }
}
