"""The nn.Modules of AINN: recognizer R, content encoder Ec, emotion encoder Ee, generator G, prosody predictor P,
HiFi-GAN vocoder. They never read files or choose devices (docs/architecture.md)."""
