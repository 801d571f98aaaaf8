// How a failed command reports itself on stderr: `berth: MESSAGE`, or a JSON object
// `{"error": "MESSAGE"}` on one line under --json.

export function formatError(message: string, json: boolean): string {
  const text = message.trim();
  return json ? `${JSON.stringify({ error: text })}\n` : `berth: ${text}\n`;
}
