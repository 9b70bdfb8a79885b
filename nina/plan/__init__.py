"""Pure plans: functions from the typed stack configuration (nina/config) and the tables (nina/catalog) to data and
text, such as names, security-group rules, OpenVPN and Flower settings, scrape targets, alerts and checklists. No
Pulumi, no templates, no I/O: components, cloud-init and the site bundle build on these."""
