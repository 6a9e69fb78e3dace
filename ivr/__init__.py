"""The voice side: menu, flow engine, speech, FastAGI transport, call trails, local Asterisk."""
