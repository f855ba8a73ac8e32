"""Sponsored answers: advertiser groups' campaigns, the segment auction per /v1/ chat answer, clicks and their billing."""
