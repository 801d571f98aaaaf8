// Comfort only: every page works without it. Copy buttons, the live tag filter and
// confirmations. Loaded as a file (the Content-Security-Policy forbids inline script).
'use strict';
document.documentElement.classList.remove('nojs');

for (const button of document.querySelectorAll('button.copy')) {
  button.hidden = false;
  button.addEventListener('click', async () => {
    const text = button.getAttribute('data-copy') || '';
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
}

// Filters the rows of this page as the user types; submitting still asks the server.
for (const input of document.querySelectorAll('input[data-filter]')) {
  const rows = document.querySelectorAll(input.getAttribute('data-filter'));
  input.addEventListener('input', () => {
    const needle = input.value.trim().toLowerCase();
    for (const row of rows) row.hidden = needle !== '' && !(row.getAttribute('data-name') || '').toLowerCase().includes(needle);
  });
}

for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
  });
}
