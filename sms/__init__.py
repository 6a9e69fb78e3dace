"""SMS gateway: business-event intake, templates, SMPP and Twilio transports (issue 4)."""
