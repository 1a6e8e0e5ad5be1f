# Stand-in for the one huggingface_hub name diffusers.schedulers.scheduling_utils imports.
